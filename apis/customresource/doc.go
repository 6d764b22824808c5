// Package customresource says what a CustomResourceDefinition (apiextensions.k8s.io/v1) and
// the OpenAPI v3 schema of each of its versions mean, the way upstream's apiextensions-apiserver
// reads them: how a CRD is defaulted and validated (with upstream's field paths and words), and,
// compiled once per served version (Version), how a custom resource, an
// *unstructured.Unstructured, is pruned of unknown fields, defaulted, validated (OpenAPI schema,
// list types, embedded resources, x-kubernetes-validations CEL rules, transition rules and
// ratcheting), typed for server-side apply, printed as table rows, selected by fields, and
// published as OpenAPI v2 and v3. It also words the warning a deprecated version carries.
//
// The meaning comes from apiextensions-apiserver's own leaf packages (structural schema,
// pruning, defaulting, objectmeta, listtype, cel, the schema validator, the CRD validation, the
// OpenAPI builder) and apimachinery's managed fields; this package is the glue that applies them
// in the order upstream's custom resource handler and strategies do.
//
// Upstream's order, for a server built on this package:
//
//   - a CRD write: DefaultCRD; PrepareCRDForCreate, PrepareCRDForUpdate or
//     PrepareCRDForStatusUpdate; ValidateCRD, ValidateCRDUpdate or ValidateCRDStatusUpdate;
//     CRDWarnings. Serve the CRD's versions (NewVersions) once its names are accepted.
//   - a custom resource in a request body: Prune (its paths are the fieldValidation
//     warnings or errors), Default; then PrepareForCreate and Validate, PrepareForUpdate and
//     ValidateUpdate, or PrepareForStatusUpdate and ValidateStatusUpdate; Warnings. Every
//     request in a deprecated version carries Warning.
//   - a custom resource read from storage: PruneStored, Default.
//   - server-side apply and managedFields: TypeConverter, with apimachinery's CRD field
//     manager (managedfields.NewDefaultCRDFieldManager).
//   - kubectl get: Columns and Row; field selectors: FieldLabels and SelectableFields;
//     /openapi/v2 and /openapi/v3: OpenAPI.
//
// This package never touches storage or HTTP: it holds no objects, reads no etcd, serves no
// requests and keeps no state beyond what it compiles from a CRD.
package customresource
