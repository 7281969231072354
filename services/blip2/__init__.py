"""The BLIP-2 service (port 8001): captions, scene, objects, colours, VQA and cluster names."""
