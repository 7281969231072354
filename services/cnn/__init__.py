"""cnn service (port 8004): a fast image classifier from an HF folder, a TorchScript file or an ONNX file."""
