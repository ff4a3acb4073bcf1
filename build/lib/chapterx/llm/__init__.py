"""chapterx.llm"""
