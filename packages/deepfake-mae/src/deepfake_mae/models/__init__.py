"""Models: facial-part masking, FacePartMAE, DeepfakeDetector."""
