package conformance

// upstreamMirrors names, for every spec, the upstream Kubernetes e2e test (test/e2e/..., by its
// full ginkgo name; [Conformance] marks those in test/conformance/testdata/conformance.yaml) whose
// behaviour it checks, or says where upstream checks it when no e2e test does. The spec table
// in README.md is generated from it; generating fails while a spec has no entry here.
var upstreamMirrors = map[string]string{
	// storage
	"[sig-storage] PersistentVolumes should run through the lifecycle of a PV and a PVC":                                              "[sig-storage] PersistentVolumes CSI Conformance should run through the lifecycle of a PV and a PVC [Conformance]",
	"[sig-storage] StorageClasses should run through the lifecycle of a StorageClass":                                                 "[sig-storage] StorageClasses CSI Conformance should run through the lifecycle of a StorageClass [Conformance]",
	"[sig-storage] CSINodes should run through the lifecycle of a csinode":                                                            "[sig-storage] CSINodes CSI Conformance should run through the lifecycle of a csinode [Conformance]",
	"[sig-storage] VolumeAttachment should run through the lifecycle of a VolumeAttachment":                                           "[sig-storage] VolumeAttachment Conformance should run through the lifecycle of a VolumeAttachment [Conformance]",
	"[sig-storage] Dynamic Provisioning should provision a claim of the default class for its pod and keep the data for the next pod": "none in conformance: [sig-storage] Dynamic Provisioning DynamicProvisioner Default should create and delete default persistent volumes [Slow]",
	"[sig-apps] StatefulSet with volumeClaimTemplates should give each replica a claim of its own that outlives its pod":              "none in conformance: [sig-apps] StatefulSet Basic StatefulSet functionality [StatefulSetBasic] should provide basic identity",
	// policy: disruption budgets, eviction, quotas and limit ranges
	"[sig-apps] DisruptionController should observe PodDisruptionBudget status updated":                              "[sig-apps] DisruptionController should observe PodDisruptionBudget status updated [Conformance]",
	"[sig-apps] DisruptionController should block an eviction until the PDB is updated to allow it":                  "[sig-apps] DisruptionController should block an eviction until the PDB is updated to allow it [Conformance]",
	"[sig-api-machinery] ResourceQuota should create a ResourceQuota and capture the life of a pod":                  "[sig-api-machinery] ResourceQuota should create a ResourceQuota and capture the life of a pod. [Conformance]",
	"[sig-scheduling] LimitRange should create a LimitRange with defaults and ensure pod has those defaults applied": "[sig-scheduling] LimitRange should create a LimitRange with defaults and ensure pod has those defaults applied. [Conformance]",

	// api-machinery: API priority and fairness
	"[sig-api-machinery] API priority and fairness should support FlowSchema API operations":                 "[sig-api-machinery] API priority and fairness should support FlowSchema API operations [Conformance]",
	"[sig-api-machinery] API priority and fairness should support PriorityLevelConfiguration API operations": "[sig-api-machinery] API priority and fairness should support PriorityLevelConfiguration API operations [Conformance]",

	// auth
	"[sig-auth] Certificates API should support CSR API operations":                                               "[sig-auth] Certificates API [Privileged:ClusterAdmin] should support CSR API operations [Conformance]",
	"[sig-auth] ServiceAccounts should give a pod's in-cluster client only what its ServiceAccount's Role allows": "none in conformance: [sig-auth] ServiceAccounts should mount an API token into pods [Conformance] checks the token's files; [sig-auth] ServiceAccountIssuerDiscovery should support OIDC discovery of service account issuer [Conformance] runs an in-cluster client",

	// api-machinery
	"[sig-api-machinery] ConfigMap should run the lifecycle of a ConfigMap and observe it on a watch":                                         "[sig-node] ConfigMap should run through a ConfigMap lifecycle [Conformance]",
	"[sig-api-machinery] ConfigMap should fail an update with a stale resourceVersion with a Conflict":                                        "none in e2e: the API conventions' optimistic concurrency (test/integration/apiserver)",
	"[sig-api-machinery] ConfigMap should delete a collection of ConfigMaps by label":                                                         "the deletecollection step of upstream's lifecycle tests, e.g. [sig-node] PodTemplates should delete a collection of pod templates [Conformance]",
	"[sig-api-machinery] Discovery should serve the legacy and named groups with their resources":                                             "[sig-api-machinery] Discovery should locate the groupVersion and a resource within each APIGroup [Conformance]",
	"[sig-api-machinery] Discovery should serve aggregated discovery for /api and /apis":                                                      "[sig-api-machinery] AggregatedDiscovery should support raw aggregated discovery endpoint Accept headers [Conformance]",
	"[sig-api-machinery] Events should serve an event created through events.k8s.io/v1 as a core v1 Event":                                    "[sig-instrumentation] Events API should ensure that an event can be fetched, patched, deleted, and listed [Conformance]",
	"[sig-api-machinery] Events should manage the lifecycle of an event":                                                                      "[sig-instrumentation] Events should manage the lifecycle of an event [Conformance]",
	"[sig-api-machinery] Events should delete a collection of events":                                                                         "[sig-instrumentation] Events should delete a collection of events [Conformance]",
	"[sig-api-machinery] Garbage collector should delete dependents of a deleted owner in the background":                                     "[sig-api-machinery] Garbage collector should delete pods created by rc when not orphaning [Conformance]",
	"[sig-api-machinery] Garbage collector should keep a foreground-deleted owner until its blocking dependents are gone":                     "[sig-api-machinery] Garbage collector should keep the rc around until all its pods are deleted if the deleteOptions says so [Conformance]",
	"[sig-api-machinery] Garbage collector should orphan dependents when the owner is deleted with propagationPolicy Orphan":                  "[sig-api-machinery] Garbage collector should orphan pods created by rc if delete options say so [Conformance]",
	"[sig-api-machinery] Lease should run the lifecycle of a Lease":                                                                           "[sig-node] Lease lease API should be available [Conformance]",
	"[sig-api-machinery] Lists should return chunks of a list with limit and continue at one resourceVersion":                                 "[sig-api-machinery] Servers with support for API chunking should return chunks of results for list calls",
	"[sig-api-machinery] Lists should filter a list with a metadata.name field selector":                                                      "the metadata.name field selector upstream's watch and lifecycle tests list with",
	"[sig-api-machinery] Lists should filter pods by spec.nodeName and status.phase field selectors":                                          "none in e2e: the pod field selectors kubectl describe node and the kubelet use",
	"[sig-api-machinery] Namespaces should delete all content of a namespace when it is deleted":                                              "[sig-api-machinery] Namespaces [Serial] should ensure that all pods are removed when a namespace is deleted [Conformance]",
	"[sig-api-machinery] Namespaces should refuse to create content in a namespace that does not exist":                                       "none in e2e: the NamespaceLifecycle admission plugin",
	"[sig-api-machinery] Secrets should store stringData as data and round-trip binary values":                                                "[sig-node] Secrets should patch a secret [Conformance]",
	"[sig-api-machinery] Secrets should list secrets with a field selector on type":                                                           "none in e2e: the secrets field selector type",
	"[sig-api-machinery] Servers with support for API chunking should count the remaining items only for a list without selectors":            "[sig-api-machinery] Servers with support for API chunking should return chunks of results for list calls",
	"[sig-api-machinery] Servers with support for Table transformation should return a Table with upstream's columns for configmaps and pods": "[sig-api-machinery] Servers with support for Table transformation should return pod details",
	"[sig-api-machinery] Watchers should be able to start watching from a specific resource version":                                          "[sig-api-machinery] Watchers should be able to start watching from a specific resource version [Conformance]",
	"[sig-api-machinery] Watchers should observe an object leaving and re-entering a label selector as DELETED and ADDED":                     "[sig-api-machinery] Watchers should observe an object deletion if it stops meeting the requirements of the selector [Conformance]",
	"[sig-api-machinery] Watchers should deliver the same ordered events to multiple watchers":                                                "[sig-api-machinery] Watchers should receive events on concurrent watches in same order [Conformance]",
	"[sig-api-machinery] Writes should not persist anything on a dry-run create, update or delete":                                            "none in e2e: test/integration/dryrun",
	"[sig-api-machinery] Writes should reject unknown fields with fieldValidation=Strict":                                                     "[sig-api-machinery] FieldValidation should detect unknown and duplicate fields of a typed object [Conformance]",
	"[sig-api-machinery] Writes should report a conflict between field managers in server-side apply and resolve it with force":               "[sig-api-machinery] ServerSideApply should give up ownership of a field if forced applied by a controller",
	"[sig-api-machinery] Writes should give a generateName object a unique name with the prefix":                                              "none in e2e: metadata.generateName (the e2e framework names every namespace so)",
	"[sig-api-machinery] Writes should keep an object with a finalizer until the finalizer is removed":                                        "none in e2e: metadata.finalizers (test/integration/apiserver)",

	// api-machinery: ValidatingAdmissionPolicies
	"[sig-api-machinery] ValidatingAdmissionPolicy [Privileged:ClusterAdmin] should validate against a Deployment":                           "[sig-api-machinery] ValidatingAdmissionPolicy [Privileged:ClusterAdmin] should validate against a Deployment [Conformance]",
	"[sig-api-machinery] ValidatingAdmissionPolicy [Privileged:ClusterAdmin] should allow expressions to refer variables.":                   "[sig-api-machinery] ValidatingAdmissionPolicy [Privileged:ClusterAdmin] should allow expressions to refer variables. [Conformance]",
	"[sig-api-machinery] ValidatingAdmissionPolicy [Privileged:ClusterAdmin] should type check validation expressions":                       "[sig-api-machinery] ValidatingAdmissionPolicy [Privileged:ClusterAdmin] should type check validation expressions",
	"[sig-api-machinery] ValidatingAdmissionPolicy [Privileged:ClusterAdmin] should type check a CRD":                                        "[sig-api-machinery] ValidatingAdmissionPolicy [Privileged:ClusterAdmin] should type check a CRD",
	"[sig-api-machinery] ValidatingAdmissionPolicy [Privileged:ClusterAdmin] should support ValidatingAdmissionPolicy API operations":        "[sig-api-machinery] ValidatingAdmissionPolicy [Privileged:ClusterAdmin] should support ValidatingAdmissionPolicy API operations [Conformance]",
	"[sig-api-machinery] ValidatingAdmissionPolicy [Privileged:ClusterAdmin] should support ValidatingAdmissionPolicyBinding API operations": "[sig-api-machinery] ValidatingAdmissionPolicy [Privileged:ClusterAdmin] should support ValidatingAdmissionPolicyBinding API operations [Conformance]",

	// api-machinery: CustomResourceDefinitions
	"[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] Simple CustomResourceDefinition creating/deleting custom resource definition objects works":                     "[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] Simple CustomResourceDefinition creating/deleting custom resource definition objects works [Conformance]",
	"[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] Simple CustomResourceDefinition listing custom resource definition objects works":                               "[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] Simple CustomResourceDefinition listing custom resource definition objects works [Conformance]",
	"[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] Simple CustomResourceDefinition getting/updating/patching custom resource definition status sub-resource works": "[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] Simple CustomResourceDefinition getting/updating/patching custom resource definition status sub-resource works [Conformance]",
	"[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] should include custom resource definition resources in discovery documents":                                     "[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] should include custom resource definition resources in discovery documents [Conformance]",
	"[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] custom resource defaulting for requests and from storage works":                                                 "[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] custom resource defaulting for requests and from storage works [Conformance]",
	"[sig-api-machinery] CustomResourcePublishOpenAPI [Privileged:ClusterAdmin] works for CRD with validation schema":                                                                                 "[sig-api-machinery] CustomResourcePublishOpenAPI [Privileged:ClusterAdmin] works for CRD with validation schema [Conformance]",
	"[sig-api-machinery] CustomResourcePublishOpenAPI [Privileged:ClusterAdmin] works for multiple CRDs of same group and version but different kinds":                                                "[sig-api-machinery] CustomResourcePublishOpenAPI [Privileged:ClusterAdmin] works for multiple CRDs of same group and version but different kinds [Conformance]",
	"[sig-api-machinery] CustomResourcePublishOpenAPI [Privileged:ClusterAdmin] removes definition from spec when one version gets changed to not be served":                                          "[sig-api-machinery] CustomResourcePublishOpenAPI [Privileged:ClusterAdmin] removes definition from spec when one version gets changed to not be served [Conformance]",
	"[sig-api-machinery] CustomResourceDefinition Watch [Privileged:ClusterAdmin] watch on custom resource definition objects":                                                                        "[sig-api-machinery] CustomResourceDefinition Watch [Privileged:ClusterAdmin] CustomResourceDefinition Watch watch on custom resource definition objects [Conformance]",
	"[sig-api-machinery] CustomResourceFieldSelectors [Privileged:ClusterAdmin] MUST list and watch custom resources matching the field selector":                                                     "[sig-api-machinery] CustomResourceFieldSelectors [Privileged:ClusterAdmin] CustomResourceFieldSelectors MUST list and watch custom resources matching the field selector [Conformance]",

	// api-machinery: the CRUD table, one row per resource
	"[sig-api-machinery] Served resources should create, get, list, update, patch, watch and delete v1 configmaps":                        "[sig-node] ConfigMap should run through a ConfigMap lifecycle [Conformance]",
	"[sig-api-machinery] Served resources should create, get, list, update, patch, watch and delete v1 secrets":                           "[sig-node] Secrets should patch a secret [Conformance]",
	"[sig-api-machinery] Served resources should create, get, list, update, patch, watch and delete v1 services":                          "[sig-network] Services should complete a service status lifecycle [Conformance]",
	"[sig-api-machinery] Served resources should create, get, list, update, patch, watch and delete v1 serviceaccounts":                   "[sig-auth] ServiceAccounts should run through the lifecycle of a ServiceAccount [Conformance]",
	"[sig-api-machinery] Served resources should create, get, list, update, patch, watch and delete v1 endpoints":                         "[sig-network] Services should test the lifecycle of an Endpoint [Conformance]",
	"[sig-api-machinery] Served resources should create, get, list, update, patch, watch and delete v1 events":                            "[sig-instrumentation] Events should manage the lifecycle of an event [Conformance]",
	"[sig-api-machinery] Served resources should create, get, list, update, patch, watch and delete v1 limitranges":                       "[sig-scheduling] LimitRange should list, patch and delete a LimitRange by collection [Conformance]",
	"[sig-api-machinery] Served resources should create, get, list, update, patch, watch and delete v1 resourcequotas":                    "[sig-api-machinery] ResourceQuota should manage the lifecycle of a ResourceQuota [Conformance]",
	"[sig-api-machinery] Served resources should create, get, list, update, patch, watch and delete v1 podtemplates":                      "[sig-node] PodTemplates should run the lifecycle of PodTemplates [Conformance]",
	"[sig-api-machinery] Served resources should create, get, list, update, patch, watch and delete v1 namespaces":                        "[sig-api-machinery] Namespaces [Serial] should patch a Namespace [Conformance]",
	"[sig-api-machinery] Served resources should create, get, list, update, patch, watch and delete apps/v1 replicasets":                  "[sig-apps] ReplicaSet Replace and Patch tests [Conformance]",
	"[sig-api-machinery] Served resources should create, get, list, update, patch, watch and delete apps/v1 deployments":                  "[sig-apps] Deployment should run the lifecycle of a Deployment [Conformance]",
	"[sig-api-machinery] Served resources should create, get, list, update, patch, watch and delete apps/v1 statefulsets":                 "[sig-apps] StatefulSet Basic StatefulSet functionality [StatefulSetBasic] should list, patch and delete a collection of StatefulSets [Conformance]",
	"[sig-api-machinery] Served resources should create, get, list, update, patch, watch and delete apps/v1 controllerrevisions":          "[sig-apps] ControllerRevision [Serial] should manage the lifecycle of a ControllerRevision [Conformance]",
	"[sig-api-machinery] Served resources should create, get, list, update, patch, watch and delete batch/v1 jobs":                        "[sig-apps] Job should manage the lifecycle of a job [Conformance]",
	"[sig-api-machinery] Served resources should create, get, list, update, patch, watch and delete coordination.k8s.io/v1 leases":        "[sig-node] Lease lease API should be available [Conformance]",
	"[sig-api-machinery] Served resources should create, get, list, update, patch, watch and delete discovery.k8s.io/v1 endpointslices":   "[sig-network] EndpointSlice should support creating EndpointSlice API operations [Conformance]",
	"[sig-api-machinery] Served resources should create, get, list, update, patch, watch and delete events.k8s.io/v1 events":              "[sig-instrumentation] Events API should ensure that an event can be fetched, patched, deleted, and listed [Conformance]",
	"[sig-api-machinery] Served resources should create, get, list, update, patch, watch and delete policy/v1 poddisruptionbudgets":       "[sig-apps] DisruptionController should list and delete a collection of PodDisruptionBudgets [Conformance]",
	"[sig-api-machinery] Served resources should create, get, list, update, patch, watch and delete networking.k8s.io/v1 networkpolicies": "[sig-network] Netpol API should support creating NetworkPolicy API operations",
	"[sig-api-machinery] Served resources should create, get, list, update, patch, watch and delete scheduling.k8s.io/v1 priorityclasses": "[sig-scheduling] SchedulerPreemption [Serial] PriorityClass endpoints verify PriorityClass endpoints can be operated with different HTTP methods [Conformance]",

	// apps
	"[sig-apps] ReplicaSet should create its replicas and replace a deleted pod":                                "[sig-apps] ReplicaSet should serve a basic image on each replica with a public image [Conformance]",
	"[sig-apps] ReplicaSet should adopt a matching orphan pod and release a pod whose labels stop matching":     "[sig-apps] ReplicaSet should adopt matching pods on creation and release no longer matching pods [Conformance]",
	"[sig-apps] ReplicaSet should get and update a ReplicaSet scale subresource":                                "[sig-apps] ReplicaSet Replicaset should have a working scale subresource [Conformance]",
	"[sig-apps] ReplicaSet should delete its pods when deleted in the background and orphan them when asked":    "[sig-api-machinery] Garbage collector should orphan RS created by deployment when deleteOptions.PropagationPolicy is Orphan [Conformance]",
	"[sig-apps] ReplicaSet should validate Replicaset Status endpoints":                                         "[sig-apps] ReplicaSet should validate Replicaset Status endpoints [Conformance]",
	"[sig-apps] ReplicaSet should list and delete a collection of ReplicaSets":                                  "[sig-apps] ReplicaSet should list and delete a collection of ReplicaSets [Conformance]",
	"[sig-apps] Deployment should roll out a template change to a new ReplicaSet and roll it back":              "[sig-apps] Deployment RollingUpdateDeployment should delete old pods and create new ones [Conformance]",
	"[sig-apps] Deployment should scale a Deployment through kubectl scale":                                     "[sig-apps] Deployment Deployment should have a working scale subresource [Conformance]",
	"[sig-apps] Deployment RecreateDeployment should delete old pods and create new ones":                       "[sig-apps] Deployment RecreateDeployment should delete old pods and create new ones [Conformance]",
	"[sig-apps] Deployment deployment should support proportional scaling":                                      "[sig-apps] Deployment deployment should support proportional scaling [Conformance]",
	"[sig-apps] Deployment should scale a paused Deployment but roll out its template change only when resumed": "none in e2e: test/integration/deployment TestPausedDeployment and TestScalePausedDeployment",
	"[sig-apps] Deployment deployment should delete old replica sets":                                           "[sig-apps] Deployment deployment should delete old replica sets [Conformance]",
	"[sig-apps] Deployment should restart a Deployment's pods with kubectl rollout restart":                     "none in e2e: kubectl rollout restart (test/cmd/apps.sh)",

	// apps: DaemonSets, StatefulSets and ReplicationControllers
	"[sig-apps] DaemonSet should run and stop a simple daemon":                                                  "[sig-apps] Daemon set [Serial] should run and stop simple daemon [Conformance]",
	"[sig-apps] DaemonSet should update pods when the template changes and roll back with kubectl rollout undo": "[sig-apps] Daemon set [Serial] should update pod when spec was updated and update strategy is RollingUpdate [Conformance]",
	"[sig-apps] StatefulSet should scale up and down in predictable order":                                      "[sig-apps] StatefulSet Basic StatefulSet functionality [StatefulSetBasic] Scaling should happen in predictable order and halt if any stateful pod is unhealthy [Slow] [Conformance]",
	"[sig-apps] StatefulSet should have a working scale subresource":                                            "[sig-apps] StatefulSet Basic StatefulSet functionality [StatefulSetBasic] should have a working scale subresource [Conformance]",
	"[sig-apps] ReplicationController should create its replicas and replace a deleted pod":                     "[sig-apps] ReplicationController should serve a basic image on each replica with a public image [Conformance]",
	"[sig-apps] ReplicationController should get and update a ReplicationController scale":                      "[sig-apps] ReplicationController should get and update a ReplicationController scale [Conformance]",

	// kubectl
	"[sig-cli] Kubectl client should create, get, label, annotate, describe and delete a configmap":           "[sig-cli] Kubectl client Kubectl label should update the label on a resource [Conformance]",
	"[sig-cli] Kubectl client should create and then configure an object with kubectl apply":                  "[sig-cli] Kubectl client Kubectl apply should apply a new configuration to an existing RC",
	"[sig-cli] Kubectl client should patch and replace objects":                                               "[sig-cli] Kubectl client Kubectl replace should update a single-container pod's image [Conformance]",
	"[sig-cli] Kubectl client should list API resources and explain a field from the OpenAPI schema":          "[sig-cli] Kubectl client Kubectl api-versions should check if v1 is in available api versions [Conformance]",
	"[sig-cli] Kubectl client should report the server version, identity and permissions":                     "[sig-cli] Kubectl client Kubectl version should check is all data is printed [Conformance]",
	"[sig-cli] Kubectl client should say that a new namespace has no pods":                                    "none in e2e: kubectl get's \"No resources found\" on stderr (test/cmd)",
	"[sig-cli] Kubectl client should print pods as JSON, YAML, a wide table and custom columns":               "none in e2e: kubectl get -o json|yaml|wide|custom-columns (test/cmd/get.sh)",
	"[sig-cli] Kubectl client should wait for a condition, a JSONPath value and a deletion with kubectl wait": "none in e2e: kubectl wait (test/cmd/wait.sh)",
	"[sig-cli] Kubectl client should check if kubectl diff finds a difference for Deployments":                "[sig-cli] Kubectl client Kubectl diff should check if kubectl diff finds a difference for Deployments [Conformance]",
	"[sig-cli] Kubectl client should check if kubectl can dry-run update Pods":                                "[sig-cli] Kubectl client Kubectl server-side dry-run should check if kubectl can dry-run update Pods [Conformance]",
	"[sig-cli] Kubectl client should create a pod from an image when restart is Never with kubectl run":       "[sig-cli] Kubectl client Kubectl run pod should create a pod from an image when restart is Never [Conformance]",
	"[sig-cli] Kubectl client Simple pod should support exec":                                                 "[sig-cli] Kubectl client Simple pod should support exec",
	"[sig-cli] Kubectl client Kubectl logs logs should be able to retrieve and filter logs":                   "[sig-cli] Kubectl client Kubectl logs logs should be able to retrieve and filter logs [Conformance]",

	// network
	"[sig-network] Services should allocate a cluster IP and a node port":                               "[sig-network] Services should be able to create a functioning NodePort service [Conformance]",
	"[sig-network] Services should publish EndpointSlices that follow the ready pods a service selects": "[sig-network] EndpointSlice should create Endpoints and EndpointSlices for Pods matching a Service [Conformance]",
	"[sig-network] Services should serve a basic endpoint from pods":                                    "[sig-network] Services should serve a basic endpoint from pods [Conformance]",
	"[sig-network] Services should be able to create a functioning NodePort service":                    "[sig-network] Services should be able to create a functioning NodePort service [Conformance]",
	"[sig-network] Services should stop sending traffic to a backend that is not ready":                 "[sig-network] Networking Granular Checks: Services should update endpoints: http",
	"[sig-network] DNS should provide DNS for services":                                                 "[sig-network] DNS should provide DNS for services [Conformance]",

	// network: EndpointSlice mirroring and load balancers
	"[sig-network] EndpointSliceMirroring should mirror a custom Endpoints resource through create update and delete": "[sig-network] EndpointSliceMirroring should mirror a custom Endpoints resource through create update and delete [Conformance]",
	"[sig-network] LoadBalancers should answer a LoadBalancer service on the node's address, as k3s's ServiceLB":      "none in conformance: [sig-network] LoadBalancers should be able to change the type and ports of a TCP service [Slow]",

	// node
	"[sig-node] NodeLease the kubelet should create and renew a Lease for its node":                       "[sig-node] NodeLease NodeLease the kubelet should create and update a lease in the kube-node-lease namespace",
	"[sig-node] NodeLease a Ready node should report its addresses, capacity and system info":             "[sig-node] NodeLease NodeLease the kubelet should report node status infrequently",
	"[sig-node] Pods should be submitted, run with a host IP and pod IP, and removed, as seen on a watch": "[sig-node] Pods should be submitted and removed [NodeConformance] [Conformance]",
	"[sig-node] Pods should run a pod with restartPolicy Never to completion and serve its logs":          "[sig-node] Downward API should provide pod name, namespace and IP address as env vars [NodeConformance] [Conformance]",
	"[sig-node] Pods should be updated":                                                                                   "[sig-node] Pods should be updated [NodeConformance] [Conformance]",
	"[sig-node] Pods should patch a pod status":                                                                           "[sig-node] Pods should patch a pod status [Conformance]",
	"[sig-node] Pods should allow activeDeadlineSeconds to be updated":                                                    "[sig-node] Pods should allow activeDeadlineSeconds to be updated [NodeConformance] [Conformance]",
	"[sig-node] ConfigMap should be consumable via environment variable":                                                  "[sig-node] ConfigMap should be consumable via environment variable [NodeConformance] [Conformance]",
	"[sig-storage] ConfigMap should be consumable from pods in volume":                                                    "[sig-storage] ConfigMap should be consumable from pods in volume [NodeConformance] [Conformance]",
	"[sig-storage] Secrets should be consumable from pods in volume":                                                      "[sig-storage] Secrets should be consumable from pods in volume [NodeConformance] [Conformance]",
	"[sig-node] Downward API should provide pod name, namespace and IP address as env vars":                               "[sig-node] Downward API should provide pod name, namespace and IP address as env vars [NodeConformance] [Conformance]",
	"[sig-storage] Downward API volume should update labels on modification":                                              "[sig-storage] Downward API volume should update labels on modification [NodeConformance] [Conformance]",
	"[sig-storage] EmptyDir volumes pod should support shared volumes between containers":                                 "[sig-storage] EmptyDir volumes pod should support shared volumes between containers [Conformance]",
	"[sig-node] InitContainer should invoke init containers on a RestartNever pod":                                        "[sig-node] InitContainer [NodeConformance] should invoke init containers on a RestartNever pod [Conformance]",
	"[sig-node] Probing container with readiness probe that fails should never be ready and never restart":                "[sig-node] Probing container with readiness probe that fails should never be ready and never restart [NodeConformance] [Conformance]",
	"[sig-node] Probing container should be restarted with a exec \"cat /tmp/health\" liveness probe":                     "[sig-node] Probing container should be restarted with a exec \"cat /tmp/health\" liveness probe [NodeConformance] [Conformance]",
	"[sig-node] Container Runtime blackbox test when starting a container that exits should run with the expected status": "[sig-node] Container Runtime blackbox test when starting a container that exits should run with the expected status [NodeConformance] [Conformance]",
	"[sig-node] NoExecuteTaintManager [Serial] [Disruptive] only evicts pods without tolerations from tainted nodes":      "[sig-node] NoExecuteTaintManager Multiple Pods [Serial] only evicts pods without tolerations from tainted nodes",
	"[sig-node] NoExecuteTaintManager [Serial] [Disruptive] evicts pods with minTolerationSeconds":                        "[sig-node] NoExecuteTaintManager Multiple Pods [Serial] evicts pods with minTolerationSeconds [Disruptive] [Conformance]",
	"[sig-node] NoExecuteTaintManager [Serial] [Disruptive] removing taint cancels eviction":                              "[sig-node] NoExecuteTaintManager Single Pod [Serial] removing taint cancels eviction [Disruptive] [Conformance]",

	// scheduling
	"[sig-scheduling] SchedulerPredicates validates that a nodeSelector is respected if matching":                                                "[sig-scheduling] SchedulerPredicates [Serial] validates that NodeSelector is respected if matching [Conformance]",
	"[sig-scheduling] SchedulerPredicates validates that a nodeSelector is respected if not matching":                                            "[sig-scheduling] SchedulerPredicates [Serial] validates that NodeSelector is respected if not matching [Conformance]",
	"[sig-scheduling] SchedulerPredicates validates that a pod requesting more CPU than any node has is not scheduled":                           "[sig-scheduling] SchedulerPredicates [Serial] validates resource limits of pods that are allowed to run [Conformance]",
	"[sig-scheduling] SchedulerPredicates validates that required NodeAffinity setting is respected if matching":                                 "[sig-scheduling] SchedulerPredicates [Serial] validates that required NodeAffinity setting is respected if matching",
	"[sig-scheduling] SchedulerPredicates validates that NodeAffinity is respected if not matching":                                              "[sig-scheduling] SchedulerPredicates [Serial] validates that NodeAffinity is respected if not matching",
	"[sig-scheduling] SchedulerPredicates validates that required pod anti-affinity on the hostname keeps a second pod off the node":             "none in e2e since 1.17: the InterPodAffinity filter, test/integration/scheduler/filters TestInterPodAffinity",
	"[sig-scheduling] SchedulerPredicates [Serial] validates that taints-tolerations is respected if matching":                                   "[sig-scheduling] SchedulerPredicates [Serial] validates that taints-tolerations is respected if matching",
	"[sig-scheduling] SchedulerPredicates [Serial] validates that taints-tolerations is respected if not matching":                               "[sig-scheduling] SchedulerPredicates [Serial] validates that taints-tolerations is respected if not matching",
	"[sig-scheduling] PodTopologySpread Filtering validates that a pod is scheduled when every domain stays within maxSkew":                      "[sig-scheduling] SchedulerPredicates [Serial] PodTopologySpread Filtering validates 4 pods with MaxSkew=1 are evenly distributed into 2 nodes",
	"[sig-scheduling] PodTopologySpread Filtering validates that a pod exceeding maxSkew with fewer domains than minDomains is not scheduled":    "none in e2e: minDomains (KEP-3022), test/integration/scheduler/filters TestPodTopologySpreadFilter",
	"[sig-scheduling] PodTopologySpread Filtering validates that a node without the topology key is not eligible for a DoNotSchedule constraint": "none in e2e: the PodTopologySpread filter's \"(missing required label)\", test/integration/scheduler/filters TestPodTopologySpreadFilter",
	"[sig-scheduling] SchedulerPreemption [Serial] validates basic preemption works":                                                             "[sig-scheduling] SchedulerPreemption [Serial] validates basic preemption works [Conformance]",

	// api-machinery: admission webhooks (the webhook server runs in the test process)
	"[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] should be able to deny pod and configmap creation":   "[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] should be able to deny pod and configmap creation [Conformance]",
	"[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] should be able to deny attaching pod":                "[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] should be able to deny attaching pod [Conformance]",
	"[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] should mutate configmap":                             "[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] should mutate configmap [Conformance]",
	"[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] should mutate pod and apply defaults after mutation": "[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] should mutate pod and apply defaults after mutation [Conformance]",
	"[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] should honor timeout":                                "[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] should honor timeout [Conformance]",
	"[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] patching/updating a validating webhook should work":  "[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] patching/updating a validating webhook should work [Conformance]",
	"[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] patching/updating a mutating webhook should work":    "[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] patching/updating a mutating webhook should work [Conformance]",
	"[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] listing validating webhooks should work":             "[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] listing validating webhooks should work [Conformance]",
	"[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] listing mutating webhooks should work":               "[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] listing mutating webhooks should work [Conformance]",

	// api-machinery: CRD conversion webhooks (the converter runs in the test process)
	"[sig-api-machinery] CustomResourceConversionWebhook [Privileged:ClusterAdmin] should be able to convert from CR v1 to CR v2":           "[sig-api-machinery] CustomResourceConversionWebhook [Privileged:ClusterAdmin] should be able to convert from CR v1 to CR v2 [Conformance]",
	"[sig-api-machinery] CustomResourceConversionWebhook [Privileged:ClusterAdmin] should be able to convert a non homogeneous list of CRs": "[sig-api-machinery] CustomResourceConversionWebhook [Privileged:ClusterAdmin] should be able to convert a non homogeneous list of CRs [Conformance]",
}
