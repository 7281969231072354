"""The classification cascade: cnn first, then CLIP re-ranking, then BLIP-2 for the least certain."""
