"""Template tags for rotation: the dashboard picture, history links, reveal buttons."""
