"""The deploy's pyinfra operations and facts (`deploy.py` calls them in dependency order).

- `connector`: the `@shopstack/<name>` hosts: an AWS account and its cluster as a pyinfra target;
- `cloud`, `settings`, `fact`: what operations and facts share: clients, inventory data, API-read facts;
- `stages`: each stage's host data (`aws` a real account; `emulator` the local cloud or kind);
- `aws`: state backend and lock, network, IAM, EKS, ECR and images, data tables, the deploy record;
- `k8s`: access to the cluster, server-side apply, prune, rollout waits, ad-hoc scale and restart;
- `model`: the one declarative model that renders every Kubernetes object.

Every operation follows one convention:
- what the target is (project, region, sizes, names) is the host's `Settings` (`cloud_of(host).settings`),
  checked once when the inventory is read; an operation's arguments are only what one call declares
  beyond that (the objects to apply, a service to scale, `present=False` to remove);
- it reads the current state through facts (`infra.fact.ApiFact`), so `--dry` plans from real reads;
- it yields only the commands the difference needs, through `infra.changes.changes`, which says "no
  change" with what already holds when there are none.
"""
