from ftc.cli import main

main()
