"""pyinfra facts and operations for the deploy's AWS state, one module per area.

Every resource is found by its tags or name, never by an id remembered from an earlier step: at plan time
(`--dry`, or the prepare phase of a run) what an earlier operation will create does not exist yet, so an
operation decides from facts about names and looks ids up when its commands run.
"""
