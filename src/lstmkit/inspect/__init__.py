"""Looking inside trained networks: gradient flow over time (gradflow.py) and other inspections."""
