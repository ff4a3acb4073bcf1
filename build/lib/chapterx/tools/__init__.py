"""chapterx.tools"""
