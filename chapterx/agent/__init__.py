"""chapterx.agent"""
