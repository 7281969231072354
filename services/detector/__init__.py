"""detector service (port 8006): object boxes from RT-DETR (COCO labels) or OWLv2 (text queries)."""
