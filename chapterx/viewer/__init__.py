"""chapterx.viewer"""
