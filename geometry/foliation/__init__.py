"""The foliation the local data matrix G(x) = Jᵀ diag(p) J defines: G itself and its horizontal and
normal leaf paths."""
