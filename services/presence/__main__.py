from services.presence.main import main

main()
