from services.moderation.main import main

main()
