from siyu.cli.main import main

main()
