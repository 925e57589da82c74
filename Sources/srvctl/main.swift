print("srvctl")
