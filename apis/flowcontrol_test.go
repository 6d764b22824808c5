package apis

import (
	"strings"
	"testing"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	"k8s.io/apiserver/pkg/apis/flowcontrol/bootstrap"
)

func TestUpstreamsBootstrapFlowControlObjectsAreValid(t *testing.T) {
	for _, fs := range append(bootstrap.MandatoryFlowSchemas, bootstrap.SuggestedFlowSchemas...) {
		fs = fs.DeepCopy()
		DefaultFlowSchema(fs)
		if errs := ValidateFlowSchema(fs); len(errs) > 0 {
			t.Errorf("FlowSchema %s: %v", fs.Name, errs)
		}
	}
	for _, plc := range append(bootstrap.MandatoryPriorityLevelConfigurations, bootstrap.SuggestedPriorityLevelConfigurations...) {
		plc = plc.DeepCopy()
		DefaultPriorityLevelConfiguration(plc)
		if errs := ValidatePriorityLevelConfiguration(plc); len(errs) > 0 {
			t.Errorf("PriorityLevelConfiguration %s: %v", plc.Name, errs)
		}
	}
}

func TestMandatoryFlowSchemaSpecIsFixed(t *testing.T) {
	fs := bootstrap.MandatoryFlowSchemaCatchAll.DeepCopy()
	fs.Spec.MatchingPrecedence = 5000
	errs := ValidateFlowSchema(fs)
	if len(errs) != 1 || errs[0].Field != "spec" || !strings.Contains(errs[0].Error(), "spec of 'catch-all' must equal the fixed value") {
		t.Errorf("errors %v", errs)
	}
}

func TestPriorityLevelQueuingIsValidatedInUpstreamsWords(t *testing.T) {
	plc := &flowcontrolv1.PriorityLevelConfiguration{}
	plc.Name = "p"
	plc.Spec = flowcontrolv1.PriorityLevelConfigurationSpec{Type: flowcontrolv1.PriorityLevelEnablementLimited,
		Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{LimitResponse: flowcontrolv1.LimitResponse{
			Type: flowcontrolv1.LimitResponseTypeQueue, Queuing: &flowcontrolv1.QueuingConfiguration{Queues: 4, HandSize: 8, QueueLengthLimit: 1}}}}
	DefaultPriorityLevelConfiguration(plc)
	errs := ValidatePriorityLevelConfiguration(plc)
	if len(errs) != 1 || errs[0].Field != "spec.limited.limitResponse.queuing.handSize" || errs[0].Detail != "should not be greater than queues (4)" {
		t.Errorf("errors %v", errs)
	}
	if *plc.Spec.Limited.NominalConcurrencyShares != 30 {
		t.Errorf("nominalConcurrencyShares defaulted to %d", *plc.Spec.Limited.NominalConcurrencyShares)
	}
}

func TestFlowSchemaRowShowsMissingPriorityLevel(t *testing.T) {
	fs := bootstrap.SuggestedFlowSchemaGlobalDefault.DeepCopy()
	fs.Status.Conditions = []flowcontrolv1.FlowSchemaCondition{{Type: flowcontrolv1.FlowSchemaConditionDangling, Status: flowcontrolv1.ConditionFalse}}
	row := flowSchemaTable().row(fs)
	if row.Cells[1] != "global-default" || row.Cells[2] != int64(9900) || row.Cells[3] != "ByUser" || row.Cells[5] != "False" {
		t.Errorf("row %v", row.Cells)
	}
}
