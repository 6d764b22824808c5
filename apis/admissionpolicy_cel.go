package apis

import (
	"sync"

	"github.com/google/cel-go/cel"
	celtypes "github.com/google/cel-go/common/types"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/cel/environment"
)

// PolicyExpression is one CEL expression of an admission policy (a validation, a message
// expression, an audit annotation's value, a match condition or a variable) with the types it
// must evaluate to, as k8s.io/apiserver's admission CEL compiler takes it. Validation here and
// enforcement in apiserver/admissionpolicy compile the same expressions the same way.
type PolicyExpression struct {
	Name       string // a variable's name; "" otherwise
	Expression string
	Types      []*cel.Type
}

var (
	_ plugincel.ExpressionAccessor      = &PolicyExpression{}
	_ plugincel.NamedExpressionAccessor = &PolicyExpression{}
)

func (e *PolicyExpression) GetExpression() string    { return e.Expression }
func (e *PolicyExpression) ReturnTypes() []*cel.Type { return e.Types }
func (e *PolicyExpression) GetName() string          { return e.Name }

// The types each kind of policy expression must have, as upstream declares them.
var (
	BoolExpression   = []*cel.Type{cel.BoolType}
	StringExpression = []*cel.Type{cel.StringType}
	// an audit annotation's value may be null: no annotation
	AuditAnnotationExpression = []*cel.Type{cel.StringType, cel.NullType}
	VariableExpression        = []*cel.Type{cel.AnyType, cel.DynType}
	// a mutating policy's mutations: an Object{...} merged into the object, or a list of
	// JSONPatch{...} operations
	ApplyConfigurationExpression = []*cel.Type{celtypes.NewObjectType("Object")}
	JSONPatchExpression          = []*cel.Type{cel.ListType(celtypes.NewObjectType("JSONPatch"))}
)

// celType is a CEL type, as expressions declare what they return.
type celType = cel.Type

// MutationDeclarations are the variables and types a mutation's expression sees: the
// authorizer, params when the policy has a paramKind, and the patch types (Object{...},
// JSONPatch{...}) that only mutations may construct.
func MutationDeclarations(hasParams bool) plugincel.OptionalVariableDeclarations {
	return plugincel.OptionalVariableDeclarations{HasParams: hasParams, HasAuthorizer: true, HasPatchTypes: true}
}

var (
	policyEnvOnce sync.Once
	policyEnv     *environment.EnvSet
)

// PolicyEnvSet is the base CEL environment of admission policies: Kubernetes' CEL libraries at
// this server's compatibility version, with strict cost enforcement (always on in 1.37).
func PolicyEnvSet() *environment.EnvSet {
	policyEnvOnce.Do(func() {
		policyEnv = environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion())
	})
	return policyEnv
}

// NewPolicyCompiler returns a compiler for one policy's expressions: it keeps the policy's
// variables, so that later expressions may use them, and so must not be shared by policies.
func NewPolicyCompiler() (*plugincel.CompositedCompiler, error) {
	return plugincel.NewCompositedCompiler(PolicyEnvSet())
}
