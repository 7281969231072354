"""clip service (port 8005): L2-normalised image and text embeddings, zero-shot scores over labels, and
trained linear heads (`mediamesh train-head`) over its image embeddings."""
