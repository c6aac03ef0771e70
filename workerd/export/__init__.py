"""workers.toml to other systems' manifests (`workerd export`)."""
