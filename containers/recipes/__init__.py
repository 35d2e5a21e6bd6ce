"""The recipes: the build functions of the derivations, one module per kind of step.

A recipe's key includes the source text of its module and of the modules it lists, so editing a recipe
rebuilds exactly the steps it makes.
"""
