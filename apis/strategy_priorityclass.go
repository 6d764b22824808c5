package apis

import schedulingv1 "k8s.io/api/scheduling/v1"

// PriorityClassStrategy keeps what a client sends; value and preemptionPolicy are immutable.
var PriorityClassStrategy Strategy = asWritten[*schedulingv1.PriorityClass]{ValidatePriorityClass, ValidatePriorityClassUpdate}
