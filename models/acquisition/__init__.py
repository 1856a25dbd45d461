"""What to buy and what it costs, torch-free: pricing and billing, single-tile plans, region estimates, the spend-aware planner, previews."""
