"""The foundation every other package stands on: validators, safe file operations, text, and environment switches.

Nothing here imports another lyricsub_hub package except errors, and nothing here touches the network.
"""
