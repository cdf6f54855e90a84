"""The decision boundary: DeepFool, Fawzi cross-sections, principal curvatures and the detector built on
them, dihedral angles between boundary pieces, and same-class region paths."""
