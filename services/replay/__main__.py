from services.replay.main import main

main()
