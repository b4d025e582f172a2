from services.analytics.main import main

main()
