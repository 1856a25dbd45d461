"""The neural core (torch): networks, policy and baselines, reward, fusion, masks, checkpoints and inference."""
