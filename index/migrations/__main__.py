from localrag.index.migrations import main

main()
