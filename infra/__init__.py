"""The deploy's pyinfra operations and facts (`deploy.py` calls them in dependency order).

- `connector`: the `@shopstack/<name>` hosts: an AWS account and its cluster as a pyinfra target;
- `cloud`, `settings`, `fact`: what operations and facts share: clients, inventory data, API-read facts;
- `aws`: state backend and lock, network, IAM, EKS, ECR and images, data tables, the deploy record;
- `k8s`: access to the cluster, server-side apply, prune, rollout waits, ad-hoc scale and restart;
- `model`: the one declarative model that renders every Kubernetes object.
"""
