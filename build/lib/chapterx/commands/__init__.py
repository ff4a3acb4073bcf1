"""One module per `chapterx` command; each exposes `register(subparsers)`."""
