from services.media_relay.main import main

main()
