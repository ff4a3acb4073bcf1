"""chapterx.trace"""
