// GPU discovery lands with the scheduling issue; see agent/gpu_inventory.h.
