"""chapterx.context"""
