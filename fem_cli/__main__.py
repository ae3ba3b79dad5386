from fem_cli.cli.main import main

main()
