"""Looking at networks: sizes and costs, per-layer statistics, features, and the plots that show them."""
