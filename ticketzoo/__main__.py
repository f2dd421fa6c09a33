from ticketzoo.cli import main

main()
