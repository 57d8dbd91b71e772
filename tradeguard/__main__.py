from tradeguard.cli.commands import main

main()
