import sys

from chapterx.cli import main

sys.exit(main())
