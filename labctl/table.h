// Plain-text tables for terminals.
#ifndef LABCTL_TABLE_H_
#define LABCTL_TABLE_H_

#include <string>
#include <vector>

namespace lab::labctl {

// Left-aligned columns separated by two spaces, a header line first; each line ends with
// '\n'. Rows shorter than the header get empty cells.
std::string FormatColumns(const std::vector<std::string>& header,
                          const std::vector<std::vector<std::string>>& rows);

}  // namespace lab::labctl

#endif  // LABCTL_TABLE_H_
