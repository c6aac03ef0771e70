from workerd.cli.workerd import main

main()
