"""Pretrained backbones: frozen image encoders and their registry, text backbones, the source-task CNN."""
