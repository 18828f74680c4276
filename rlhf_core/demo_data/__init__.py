"""Data the studio ships or makes for its demos: the sentiment sentences, instruction preferences."""
