"""Policies trained on a (learned) reward: the DQN and its compiled update."""
