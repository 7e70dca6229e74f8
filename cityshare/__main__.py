from cityshare.cli import main

main()
