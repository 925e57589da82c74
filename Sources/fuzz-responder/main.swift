// Placeholder: the fuzz target is being written.
print("fuzz-responder")
