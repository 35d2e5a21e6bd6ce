"""The EKS binding: a local Kubernetes for each EKS cluster in the AWS emulator, its Nodes following its
node groups (`python -m sim.eks`)."""
