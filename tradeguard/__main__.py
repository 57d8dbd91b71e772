from tradeguard.core.cli import main

main()
