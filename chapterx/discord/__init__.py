"""chapterx.discord"""
