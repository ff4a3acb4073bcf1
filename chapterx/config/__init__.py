"""chapterx.config"""
