"""What a patch cycle decides, as functions of plain data: the plan, the gates, each host's outcome,
the evidence and the figures of its reports. Nothing here calls a cloud or reads a store: operators,
hooks and the UI read them and pass the data in."""
