// Package openapi builds and serves the OpenAPI documents of the API skiff serves: the
// OpenAPI v2 document at /openapi/v2 and the OpenAPI v3 index and per group-version documents
// at /openapi/v3, as kubectl (explain, client-side validation, the fieldValidation probe) and
// client-go's openapi3 client read them.
//
// Nothing here is written by hand per kind. The schema definitions are what upstream's
// openapi-gen would write, derived by reflection from the Go types of k8s.io/api and
// k8s.io/apimachinery: field names and requiredness from json tags, descriptions from each
// type's SwaggerDoc, patch strategies from struct tags, and list types, map keys, map types
// and defaults from client-go's structured-merge-diff schema of the built-in types. The paths
// come from the apis table, one route per verb as upstream's endpoint installer lays them
// out. Both are handed to kube-openapi's own document builders (builder, builder3), so that
// parameter sharing, sorting, $ref wrapping and naming follow upstream exactly, and the v3
// documents are served by kube-openapi's handler3.
//
// Documents are built once, on the first request that needs them, and served from memory.
// This package never reads storage and never writes to the apis table.
package openapi
